import { AssignerProtocol } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import type { AdminClient } from '../../src/adapters/kafka/client.js';
import { groupConsumers } from '../../src/adapters/kafka/kafkajs/admin.js';
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

/** An admin client over topic 'orders' with 2 partitions, 10 messages each, committed at 4. */
function backlogAdmin(consumers: () => Promise<Map<number, number> | undefined>): AdminClient {
  const { admin } = fakeAdmin(2);
  return {
    ...admin,
    topicOffsets: async () => [
      { partition: 0, low: 0, high: 10 },
      { partition: 1, low: 0, high: 10 },
    ],
    committedOffsets: async () =>
      new Map([
        [0, 4],
        [1, 4],
      ]),
    partitionConsumers: consumers,
  };
}

describe('kafka backlog consumers', () => {
  const member = (partitions: number[]) => ({
    memberAssignment: AssignerProtocol.MemberAssignment.encode({
      version: 0,
      assignment: { orders: partitions },
      userData: Buffer.alloc(0),
    }),
  });

  it('counts assigned members of a Stable group, none of an Empty or Dead one, and is unknown while it rebalances', () => {
    const members = [member([0]), member([1]), member([1])];
    expect(groupConsumers({ state: 'Stable', members }, 'orders')).toEqual(
      new Map([
        [0, 1],
        [1, 2],
      ]),
    );
    expect(groupConsumers({ state: 'Empty', members: [] }, 'orders')).toEqual(new Map());
    expect(groupConsumers({ state: 'Dead', members: [] }, 'orders')).toEqual(new Map());
    expect(groupConsumers(undefined, 'orders')).toEqual(new Map());
    // A rebalance in progress: the members are listed, their assignments stale or empty.
    expect(groupConsumers({ state: 'PreparingRebalance', members }, 'orders')).toBeUndefined();
    expect(groupConsumers({ state: 'CompletingRebalance', members: [] }, 'orders')).toBeUndefined();
  });

  it('reports consumers unknown (absent) during a rebalance or when describing the group fails, with the offsets still', async () => {
    const rebalancing = await new TopicAdmin(
      backlogAdmin(async () => undefined),
      () => {},
    ).backlog('orders', 'g');
    expect(rebalancing.total).toBe(12);
    expect(rebalancing.partitions.map((p) => p.consumers)).toEqual([undefined, undefined]);
    const failing = await new TopicAdmin(
      backlogAdmin(async () => {
        throw new Error('coordinator not available');
      }),
      () => {},
    ).backlog('orders', 'g');
    expect(failing.total).toBe(12);
    expect(failing.partitions[0]).not.toHaveProperty('consumers');
    const empty = await new TopicAdmin(
      backlogAdmin(async () => new Map()),
      () => {},
    ).backlog('orders', 'g');
    expect(empty.partitions.map((p) => p.consumers)).toEqual([0, 0]);
  });
});
