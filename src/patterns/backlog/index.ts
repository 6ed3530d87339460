export type { BacklogStrategy, ConcurrencyStrategyOptions } from './concurrency.js';
export { scaleConcurrency } from './concurrency.js';
export type { ExpandConsumer, ExpandOptions } from './expand.js';
export { expand } from './expand.js';
export type { PartitionHealth, PartitionSample } from './health.js';
export { HEALTH_ORDER, MIN_SAMPLES, partitionHealth, worseHealth } from './health.js';
export type {
  BacklogMonitorEvents,
  BacklogMonitorOptions,
  BacklogReport,
  MeterLike,
  ObservableGaugeLike,
  ObservableResultLike,
  PartitionReport,
} from './monitor.js';
export { BacklogMonitor, HEALTH_CODE, HEALTH_METRIC, LAG_METRIC, monitorBacklog } from './monitor.js';
export type { OverflowConsumer, OverflowOptions } from './overflow.js';
export { overflow } from './overflow.js';
export type { PeakShavingOptions, ShavedProducer } from './peak-shaving.js';
export { shaveProducer } from './peak-shaving.js';
export type { FullSample, LagSource, PartitionRates } from './rates.js';
export { partitionRates } from './rates.js';
