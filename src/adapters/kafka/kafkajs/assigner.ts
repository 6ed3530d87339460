/**
 * The consumers' partition assigner, and the tags each member announces in its group metadata.
 */
import kafkajs, { type PartitionAssigner } from 'kafkajs';

// kafkajs is CommonJS; Node detects only some of its exports as named ESM exports.
const { AssignerProtocol } = kafkajs;

const NO_USER_DATA = Buffer.alloc(0);

/** Member metadata user data: `{ mqkitTags: { <topic>: 'tag1,tag2' | '' } }` as JSON. */
export function tagsUserData(tags: Readonly<Record<string, string>>): Buffer {
  return Buffer.from(JSON.stringify({ mqkitTags: tags }));
}

/** The tags a member announced for `topic`, or undefined for a member that announced none. */
export function announcedTags(metadata: Buffer, topic: string): string | undefined {
  try {
    const userData = AssignerProtocol.MemberMetadata.decode(metadata)?.userData;
    if (userData === undefined || userData.length === 0) return undefined;
    const tags: unknown = JSON.parse(userData.toString('utf8'))?.mqkitTags?.[topic];
    return typeof tags === 'string' ? tags : undefined;
  } catch {
    return undefined; // another client's metadata
  }
}

/** The partitions of `topic` in a member's assignment (empty for one it cannot read). */
export function assignedPartitions(assignment: Buffer, topic: string): number[] {
  try {
    return AssignerProtocol.MemberAssignment.decode(assignment)?.assignment[topic] ?? [];
  } catch {
    return []; // an empty assignment (a rebalance in progress) or another client's format
  }
}

/**
 * Round-robin over the members subscribed to each topic. kafkajs's own round-robin assigner
 * deals every topic of the leader's subscription to all members, which breaks groups whose
 * members read different topics (one group name used for several topics, as mqkit allows).
 * Topics are dealt in name order, each starting one member further, to spread small topics.
 */
export const subscriptionAssigner =
  (userData: Buffer): PartitionAssigner =>
  ({ cluster }) => ({
    name: 'MqkitRoundRobinAssigner',
    version: 0,
    async assign({ members }) {
      const readers = new Map<string, string[]>();
      for (const { memberId, memberMetadata } of members) {
        for (const topic of AssignerProtocol.MemberMetadata.decode(memberMetadata)?.topics ?? []) {
          const list = readers.get(topic);
          if (list === undefined) readers.set(topic, [memberId]);
          else list.push(memberId);
        }
      }
      const topics = [...readers.keys()].sort();
      await cluster.addMultipleTargetTopics(topics);
      const assignment = new Map<string, Record<string, number[]>>();
      topics.forEach((topic, t) => {
        const memberIds = (readers.get(topic) as string[]).sort();
        for (const { partitionId } of cluster.findTopicPartitionMetadata(topic)) {
          const memberId = memberIds[(partitionId + t) % memberIds.length] as string;
          let own = assignment.get(memberId);
          if (own === undefined) {
            own = {};
            assignment.set(memberId, own);
          }
          const partitions = own[topic];
          if (partitions === undefined) own[topic] = [partitionId];
          else partitions.push(partitionId);
        }
      });
      return [...assignment].map(([memberId, own]) => ({
        memberId,
        memberAssignment: AssignerProtocol.MemberAssignment.encode({
          version: 0,
          assignment: own,
          userData: NO_USER_DATA,
        }),
      }));
    },
    protocol({ topics }) {
      return {
        name: 'MqkitRoundRobinAssigner',
        metadata: AssignerProtocol.MemberMetadata.encode({ version: 0, topics, userData }),
      };
    },
  });
