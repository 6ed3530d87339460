export {
  type HalfMessage,
  type HalfMessageEvents,
  type HalfMessageState,
  type HalfMessagesOptions,
  halfMessages,
  type LocalTransactionState,
  type TransactionalProducer,
  type TransactionSendResult,
} from './half-messages.js';
