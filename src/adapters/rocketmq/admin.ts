import { ConnectionError, MqError, UnsupportedError } from '../../core/errors.js';
import { CODE, parseRemotingJson, RESPONSE, RemotingClient, type RemotingResponse } from './remoting.js';

interface ClusterInfo {
  brokerAddrTable: Record<string, { brokerName: string; brokerAddrs: Record<string, string> }>;
}
interface RouteData {
  queueDatas: { brokerName: string; readQueueNums: number; writeQueueNums: number; perm: number }[];
  brokerDatas: { brokerName: string; brokerAddrs: Record<string, string> }[];
}

/** One queue of a topic on one broker: a partition, numbered across brokers. */
export interface QueueRef {
  partition: number;
  broker: string;
  queueId: number;
}

/**
 * Administration over RocketMQ's remoting protocol (the name server and the brokers it lists),
 * for what the 5.3 gRPC proxy does not offer: creating topics (message type MIXED, so that one
 * topic takes normal, FIFO, delayed and transactional messages, as an mqkit topic does) and
 * consumer groups (FIFO or not), and reading and setting consumer offsets.
 */
export class RocketMqAdmin {
  private readonly clients = new Map<string, RemotingClient>();
  private readonly knownTopics = new Map<string, Promise<void>>();

  constructor(
    /** `host:port` of the name server; undefined: admin calls are refused. */
    private readonly namesrv: string | undefined,
    private readonly timeoutMs: number,
  ) {}

  get available(): boolean {
    return this.namesrv !== undefined;
  }

  /** Creates the topic once per connection if it has no route yet (1 queue per master). */
  ensureExists(topic: string): Promise<void> {
    let known = this.knownTopics.get(topic);
    if (known === undefined) {
      known = this.ensureTopic(topic, undefined);
      this.knownTopics.set(topic, known);
      known.catch(() => this.knownTopics.delete(topic));
    }
    return known;
  }

  /** Creates the topic with `queues` queues per master, or raises its count (never lowers it). */
  async ensureTopic(topic: string, queues: number | undefined): Promise<void> {
    const route = await this.route(topic);
    const masters = await this.masters();
    for (const [brokerName, address] of masters) {
      const current = route?.queueDatas.find((q) => q.brokerName === brokerName);
      const wanted = Math.max(current?.writeQueueNums ?? 0, queues ?? (current === undefined ? 1 : 0));
      if (current !== undefined && current.writeQueueNums >= wanted && current.readQueueNums >= wanted)
        continue;
      const response = await this.call(address, CODE.updateAndCreateTopic, {
        topic,
        defaultTopic: 'TBW102',
        readQueueNums: wanted,
        writeQueueNums: wanted,
        perm: 6,
        topicFilterType: 'SINGLE_TAG',
        topicSysFlag: 0,
        order: false,
        attributes: '+message.type=MIXED',
      });
      if (response.code !== RESPONSE.success) {
        const hint = /MIXED/i.test(response.remark ?? '')
          ? ' (set enableMixedMessageType=true in broker.conf: an mqkit topic carries normal, FIFO, delayed and transactional messages)'
          : '';
        throw new MqError(
          'CONFIG',
          `RocketMQ refused to create topic ${topic}: ${response.remark}${hint}`,
          false,
        );
      }
    }
    this.knownTopics.set(topic, Promise.resolve());
  }

  /**
   * Creates or updates the consumer group. `orderly` makes it a FIFO group: the broker hands out
   * a queue's next messages only once the previous ones were acknowledged, whichever member
   * holds them. The last subscriber to start sets the kind (members of one group in one
   * connection must agree; the broker checks that).
   */
  async ensureGroup(group: string, orderly: boolean): Promise<void> {
    for (const [, address] of await this.masters()) {
      const body = Buffer.from(
        JSON.stringify({
          groupName: group,
          consumeEnable: true,
          consumeFromMinEnable: true,
          consumeBroadcastEnable: true,
          consumeMessageOrderly: orderly,
          retryQueueNums: 1,
          retryMaxTimes: 16,
          brokerId: 0,
          whichBrokerWhenConsumeSlowly: 1,
          notifyConsumerIdsChangedEnable: true,
          groupSysFlag: 0,
          consumeTimeoutMinute: 15,
          attributes: {},
        }),
      );
      const created = await this.call(address, CODE.updateAndCreateSubscriptionGroup, {}, body);
      if (created.code !== RESPONSE.success)
        throw new MqError('CONFIG', `RocketMQ refused to create group ${group}: ${created.remark}`, false);
    }
  }

  /** Deletes the topic from every master and from the name server (benchmark clean-up). */
  async deleteTopic(topic: string): Promise<void> {
    for (const [, address] of await this.masters())
      this.check(await this.call(address, CODE.deleteTopicInBroker, { topic }), 'delete topic in broker');
    this.check(
      await this.call(this.requireNamesrv(), CODE.deleteTopicInNamesrv, { topic }),
      'delete topic in name server',
    );
    this.knownTopics.delete(topic);
  }

  /** Deletes the consumer group and its offsets on every master (a broadcast instance's group). */
  async deleteGroup(group: string): Promise<void> {
    for (const [, address] of await this.masters()) {
      const r = await this.call(address, CODE.deleteSubscriptionGroup, {
        groupName: group,
        cleanOffset: true,
      });
      this.check(r, 'delete subscription group');
    }
  }

  /** The topic's queues, numbered as partitions across brokers (in broker name order). */
  async queues(topic: string): Promise<QueueRef[]> {
    const route = await this.route(topic);
    if (route === undefined) return [];
    const refs: QueueRef[] = [];
    const datas = [...route.queueDatas].sort((a, b) => a.brokerName.localeCompare(b.brokerName));
    for (const q of datas) {
      const address = route.brokerDatas.find((b) => b.brokerName === q.brokerName)?.brokerAddrs['0'];
      if (address === undefined) continue;
      for (let queueId = 0; queueId < q.readQueueNums; queueId++)
        refs.push({ partition: refs.length, broker: address, queueId });
    }
    return refs;
  }

  /** The group's committed offset of a queue; undefined when it has none. */
  async consumerOffset(ref: QueueRef, topic: string, group: string): Promise<bigint | undefined> {
    const r = await this.call(ref.broker, CODE.queryConsumerOffset, {
      consumerGroup: group,
      topic,
      queueId: ref.queueId,
      // Otherwise the broker answers 0 for a group it never saw while the queue is in memory.
      setZeroIfNotFound: false,
    });
    if (r.code === RESPONSE.queryNotFound) return undefined;
    this.check(r, 'query consumer offset');
    return BigInt(r.extFields.offset ?? '0');
  }

  async maxOffset(ref: QueueRef, topic: string): Promise<bigint> {
    const r = await this.call(ref.broker, CODE.getMaxOffset, { topic, queueId: ref.queueId });
    this.check(r, 'get max offset');
    return BigInt(r.extFields.offset ?? '0');
  }

  async minOffset(ref: QueueRef, topic: string): Promise<bigint> {
    const r = await this.call(ref.broker, CODE.getMinOffset, { topic, queueId: ref.queueId });
    this.check(r, 'get min offset');
    return BigInt(r.extFields.offset ?? '0');
  }

  async offsetForTimestamp(ref: QueueRef, topic: string, timestamp: number): Promise<bigint> {
    const r = await this.call(ref.broker, CODE.searchOffsetByTimestamp, {
      topic,
      queueId: ref.queueId,
      timestamp,
    });
    this.check(r, 'search offset by timestamp');
    return BigInt(r.extFields.offset ?? '0');
  }

  async commitOffset(ref: QueueRef, topic: string, group: string, offset: bigint): Promise<void> {
    const r = await this.call(ref.broker, CODE.updateConsumerOffset, {
      consumerGroup: group,
      topic,
      queueId: ref.queueId,
      commitOffset: offset.toString(),
    });
    this.check(r, 'update consumer offset');
  }

  close(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  private async route(topic: string): Promise<RouteData | undefined> {
    const r = await this.call(this.requireNamesrv(), CODE.getRouteInfoByTopic, { topic });
    if (r.code === RESPONSE.topicNotExist) return undefined;
    this.check(r, 'get topic route');
    return parseRemotingJson<RouteData>(r.body);
  }

  private async masters(): Promise<[string, string][]> {
    const r = await this.call(this.requireNamesrv(), CODE.getBrokerClusterInfo);
    this.check(r, 'get cluster info');
    const info = parseRemotingJson<ClusterInfo>(r.body);
    const masters = Object.values(info.brokerAddrTable ?? {}).flatMap((b) => {
      const address = b.brokerAddrs['0'];
      return address === undefined ? [] : [[b.brokerName, address] as [string, string]];
    });
    if (masters.length === 0) throw new ConnectionError('RocketMQ: the name server lists no master broker');
    return masters.sort((a, b) => a[0].localeCompare(b[0]));
  }

  private requireNamesrv(): string {
    if (this.namesrv === undefined)
      throw new UnsupportedError(
        'RocketMQ: creating topics and groups, offsets and backlog need the name server: add ?namesrv=host:port to the rocketmq:// URL (or the rocketmq.namesrv option)',
      );
    return this.namesrv;
  }

  private async call(
    address: string,
    code: number,
    fields: Record<string, string | number | boolean> = {},
    body?: Buffer,
  ): Promise<RemotingResponse> {
    let client = this.clients.get(address);
    if (client === undefined) {
      client = new RemotingClient(address, this.timeoutMs);
      this.clients.set(address, client);
    }
    try {
      return await client.request(code, fields, body);
    } catch (error) {
      throw new ConnectionError(`RocketMQ admin request to ${address} failed: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  private check(r: RemotingResponse, what: string): void {
    if (r.code !== RESPONSE.success)
      throw new MqError('CONNECTION', `RocketMQ ${what} failed: ${r.remark}`, true);
  }
}
