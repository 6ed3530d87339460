import { Producer as ClientProducer, type MessageView } from 'rocketmq-client-nodejs';
import { TransactionResolution } from 'rocketmq-client-nodejs/proto/apache/rocketmq/v2/definition_pb.js';
import type { Headers, OutgoingMessage } from '../../core/message.js';
import type {
  NativeDecision,
  NativeHalf,
  NativeTransactionGroup,
  NativeTransactions,
} from '../../core/native-transactions.js';
import { applicationHeaders, encodeMessage, H } from '../../core/wire.js';
import type { RocketMqBroker } from './broker.js';
import { mqkitName, nativeName } from './names.js';
import { EMPTY_BODY, SYSTEM_PROPERTY } from './transport.js';

/** The broker's count of checks of a half message (a message property). */
const CHECK_TIMES = 'TRANSACTION_CHECK_TIMES';
/**
 * The mqkit group of a half message. RocketMQ 5's gRPC producers have no group: the proxy asks
 * any producer of the topic, so a member of another group answers 'unknown' (the broker asks
 * again later, maybe a member of the right group).
 */
const TX_GROUP = 'mq-tx-group';

/**
 * RocketMQ's transactional messages behind `halfMessages`. RocketMQ 5's proxy asks a live
 * producer client that publishes to the message's topic about an undecided half message (after
 * the broker's `transactionTimeOut`, then every `transactionCheckInterval`, at most
 * `transactionCheckMax` times, then discards it), so each group keeps one client per topic it
 * sent to, with the group's checker: any process of the group that sent to a topic answers its
 * checks.
 */
export class RocketMqTransactions implements NativeTransactions {
  constructor(
    private readonly broker: RocketMqBroker,
    private readonly maxBytes: number,
  ) {}

  open(group: string, check: (half: NativeHalf) => Promise<NativeDecision>): NativeTransactionGroup {
    const clients = new Map<string, Promise<ClientProducer>>();
    const broker = this.broker;
    const checker = {
      async check(view: MessageView): Promise<TransactionResolution> {
        let decision: NativeDecision;
        if (view.properties.get(TX_GROUP) !== group)
          return TransactionResolution.TRANSACTION_RESOLUTION_UNSPECIFIED;
        try {
          decision = await check(halfOf(view));
        } catch {
          decision = 'unknown';
        }
        return decision === 'commit'
          ? TransactionResolution.COMMIT
          : decision === 'rollback'
            ? TransactionResolution.ROLLBACK
            : TransactionResolution.TRANSACTION_RESOLUTION_UNSPECIFIED;
      },
    };
    const clientFor = (topic: string): Promise<ClientProducer> => {
      let client = clients.get(topic);
      if (client === undefined) {
        client = (async () => {
          const p = new ClientProducer({ ...broker.clientOptions, topics: [topic], checker });
          await p.startup();
          return p;
        })();
        clients.set(topic, client);
        client.catch(() => clients.delete(topic));
      }
      return client;
    };
    return {
      send: async (message: OutgoingMessage<unknown>, decide: (id: string) => Promise<NativeDecision>) => {
        broker.assertOpen();
        const wire = encodeMessage(message, this.maxBytes);
        const topic = nativeName(wire.topic, 'message.topic');
        if (broker.admin.available) await broker.admin.ensureExists(topic);
        const properties = new Map(Object.entries(wire.headers));
        properties.delete(H.tag);
        if (wire.key !== undefined) properties.set(H.key, wire.key);
        properties.set(TX_GROUP, group);
        const empty = wire.payload.byteLength === 0;
        if (empty) properties.set(EMPTY_BODY, '1');
        let client: ClientProducer;
        let transaction: ReturnType<ClientProducer['beginTransaction']>;
        try {
          client = await clientFor(topic);
          transaction = client.beginTransaction();
          await client.send(
            {
              topic,
              body: empty ? Buffer.from([0]) : Buffer.from(wire.payload),
              ...(wire.tag === undefined ? {} : { tag: wire.tag }),
              ...(wire.key === undefined || wire.key === '' ? {} : { keys: [wire.key] }),
              properties,
            },
            transaction,
          );
        } catch (error) {
          throw broker.error(error, `sending a half message to ${wire.topic}`);
        }
        const decision = await decide(wire.id);
        try {
          if (decision === 'commit') await transaction.commit();
          else if (decision === 'rollback') await transaction.rollback();
        } catch (error) {
          // The broker's check decides instead.
          throw broker.error(error, `ending the transaction of ${wire.id} (a check will decide)`);
        }
        return { id: wire.id, decision };
      },
      close: async () => {
        const all = [...clients.values()];
        clients.clear();
        await Promise.all(all.map(async (c) => (await c.catch(() => undefined))?.shutdown().catch(() => {})));
      },
    };
  }
}

function halfOf(view: MessageView): NativeHalf {
  const all: Headers = {};
  for (const [name, value] of view.properties)
    if (!SYSTEM_PROPERTY.test(name) || name === CHECK_TIMES) all[name] = value;
  const empty = all[EMPTY_BODY] === '1';
  const checks = Number(all[CHECK_TIMES] ?? '1');
  return {
    id: all[H.id] ?? view.messageId,
    topic: mqkitName(view.topic),
    key: all[H.key] ?? view.keys[0],
    tag: view.tag === '' ? undefined : view.tag,
    headers: applicationHeaders(Object.fromEntries(Object.entries(all).filter(([n]) => n !== CHECK_TIMES))),
    contentType: all[H.contentType] ?? 'application/octet-stream',
    payload: empty ? new Uint8Array(0) : view.body,
    checks: Number.isFinite(checks) && checks > 0 ? checks : 1,
  };
}
