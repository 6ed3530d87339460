/** The producers' partitioner: kafkajs's default, sticky per message, aware of added partitions. */
import kafkajs, { type Message } from 'kafkajs';

// kafkajs is CommonJS; Node detects only some of its exports as named ESM exports.
const { Partitioners } = kafkajs;

/** Where the partitioner put a message (kafkajs ignores other fields), so `send` can report it. */
export const PLACED = Symbol('mqkit.partition');
export type PlacedMessage = Message & { [PLACED]?: number };

/** Partition counts topics are known to have (since `until`), whatever older metadata says. */
export type PartitionMinimums = Map<string, { count: number; until: number }>;

/** kafkajs's error for missing metadata: its producer re-reads the metadata and tries again. */
const MetadataNotLoaded = kafkajs.KafkaJSMetadataNotLoaded as unknown as new (message: string) => Error;

/** How long after a partition increase metadata showing fewer partitions counts as stale. */
export const PARTITIONS_ADDED_GRACE_MS = 60_000;

/**
 * kafkajs's Java-compatible DefaultPartitioner (murmur2 of the key, round-robin without one),
 * sticky per message: a retried request keeps each message on the partition it first chose.
 * Metadata showing fewer partitions than the topic is known to have (`partitionsAdded`) is
 * refused as not loaded, which makes kafkajs re-read it and try again.
 */
export function placingPartitioner(minimums: PartitionMinimums) {
  const inner = Partitioners.DefaultPartitioner();
  return (args: Parameters<typeof inner>[0]): number => {
    const minimum = minimums.get(args.topic);
    if (minimum !== undefined && args.partitionMetadata.length < minimum.count) {
      if (Date.now() < minimum.until) {
        throw new MetadataNotLoaded(
          `metadata of ${args.topic} shows ${args.partitionMetadata.length} partitions, not ${minimum.count}`,
        );
      }
      minimums.delete(args.topic);
    }
    const message = args.message as PlacedMessage;
    const previous = message[PLACED];
    if (previous !== undefined && previous < args.partitionMetadata.length) return previous;
    const partition = inner(args);
    message[PLACED] = partition;
    return partition;
  };
}
