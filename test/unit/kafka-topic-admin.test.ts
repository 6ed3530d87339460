import { describe, expect, it } from 'vitest';
import type { AdminClient } from '../../src/adapters/kafka/client.js';
import { TopicAdmin } from '../../src/adapters/kafka/topic-admin.js';

/** An admin client over one topic that records what it was asked to wait for. */
function fakeAdmin(partitions: number | undefined): { admin: AdminClient; waits: [string, number][] } {
  const waits: [string, number][] = [];
  const unused = async (): Promise<never> => {
    throw new Error('not used here');
  };
  const admin: AdminClient = {
    brokerCount: async () => 3,
    partitionCount: async () => partitions,
    createTopic: async () => false, // someone else created it meanwhile
    createPartitions: async () => {},
    waitForTopic: async (topic, count) => {
      waits.push([topic, count]);
    },
    topicOffsets: unused,
    committedOffsets: unused,
    offsetsForTimestamp: unused,
    memberTags: unused,
    partitionConsumers: unused,
    deleteGroup: unused,
  };
  return { admin, waits };
}

describe('kafka ensureTopic on a topic that exists', () => {
  it('waits until every broker serves it, as it does for one it creates', async () => {
    // Created a moment ago by someone else: a broker may not know it yet.
    const { admin, waits } = fakeAdmin(4);
    await new TopicAdmin(admin, () => {}).ensureTopic('orders', 2);
    expect(waits).toEqual([['orders', 4]]);
  });
});
