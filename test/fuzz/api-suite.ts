import fc from 'fast-check';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { type Broker, connect, type MqError, type Producer } from '../../src/index.js';
import {
  bodies,
  type FuzzUrl,
  headers,
  idsOrTags,
  invalidHeaders,
  invalidName,
  keys,
  loggerSlot,
  names,
  numberish,
  optionsOf,
  passwords,
  safePartitions,
  weird,
} from './arbitraries.js';
import {
  checkProperty,
  describeError,
  errorTexts,
  expectMqError,
  expectNoSecret,
  type Outcome,
  ProcessWatch,
  runs,
  secretForms,
  settle,
  spyLogger,
  summary,
} from './harness.js';

/** How one broker is fuzzed through the public API. */
export interface ApiFuzzTarget {
  kind: 'memory' | 'rabbitmq' | 'kafka';
  /** The URL of the broker the shared connection uses. */
  url: () => string;
  /** URLs for the `connect` property. */
  urls: fc.Arbitrary<FuzzUrl>;
  /** Most a call may take before the case fails as a hang. */
  boundMs: number;
  /** Cases of each property, as a share of `MQKIT_FUZZ_RUNS`. */
  weights: {
    connect: number;
    producer: number;
    send: number;
    oneWay: number;
    subscribe: number;
    topics: number;
  };
  /** Sizes of the huge bodies sent. */
  hugeBodies: readonly number[];
}

/** Time one property may spend in all (cases and shrinking) before it stops starting new cases. */
const TIME_LIMIT_MS = Number(process.env.MQKIT_FUZZ_TIME_LIMIT_MS ?? 90_000);

const ADAPTER_SECTIONS: Record<string, string> = {
  memory: 'memory',
  kafka: 'kafka',
  amqp: 'rabbitmq',
  amqps: 'rabbitmq',
};

/** Adapter option generators (`ConnectOptions.memory`, `.kafka`, `.rabbitmq`). */
function adapterOptions() {
  const small = fc.oneof(fc.integer({ min: 1, max: 8 }), numberish);
  return {
    memory: optionsOf({ partitions: small, retention: numberish }, ['partitionz', 'retension', 'kafka']),
    kafka: optionsOf(
      {
        clientId: fc.oneof(fc.string({ maxLength: 10 }), weird),
        ssl: fc.oneof(fc.boolean(), weird),
        sasl: fc.oneof(
          passwords.map((password) => ({ mechanism: 'plain', username: 'fuzz', password })),
          weird,
        ),
        connectionTimeoutMs: numberish,
        requestTimeoutMs: numberish,
        metadataMaxAgeMs: numberish,
        logLevel: fc.oneof(fc.constantFrom('nothing', 'error', 'warn', 'info', 'debug'), weird),
        producer: fc.oneof(
          fc.record({ lingerMs: numberish, batchSize: numberish }, { requiredKeys: [] }),
          weird,
        ),
        consumer: fc.oneof(
          fc.record({ prefetch: numberish, sessionTimeoutMs: numberish }, { requiredKeys: [] }),
          weird,
        ),
      },
      ['brokers', 'sasl_', 'connectionTimeout', 'rabbitmq'],
    ),
    rabbitmq: optionsOf(
      {
        queueType: fc.oneof(fc.constantFrom('classic', 'quorum'), weird),
        prefetch: numberish,
        partitions: fc.oneof(fc.integer({ min: 1, max: 4 }), weird),
        streams: fc.oneof(fc.constant([]), weird),
        connectionName: fc.oneof(fc.string({ maxLength: 300 }), weird),
        reconnect: fc.oneof(
          fc.record({ initialMs: numberish, maxMs: numberish }, { requiredKeys: [] }),
          weird,
        ),
        memberHeartbeatMs: numberish,
        tls: fc.oneof(
          passwords.map((passphrase) => ({ passphrase })),
          fc.constantFrom<unknown>('yes', true, 1),
        ),
        managementUrl: fc.oneof(fc.constantFrom('http://127.0.0.1:1', 'not a url'), weird),
        holdUnroutedMs: numberish,
      },
      ['prefetchh', 'vhost', 'heartbeat', 'memory'],
    ),
  };
}

/** Every secret a set of connect options carries (passwords in `kafka.sasl` and `rabbitmq.tls`). */
function optionSecrets(options: unknown): string[] {
  const found: string[] = [];
  const visit = (value: unknown, depth: number): void => {
    if (depth > 4 || typeof value !== 'object' || value === null) return;
    for (const [k, v] of Object.entries(value)) {
      if ((k === 'password' || k === 'passphrase') && typeof v === 'string') found.push(v);
      else visit(v, depth + 1);
    }
  };
  visit(options, 0);
  return found;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Why a producer options value must be refused, or undefined when it is valid. */
function invalidProducerOptions(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (!isPlainObject(value)) return 'options not an object';
  for (const k of Object.keys(value))
    if (!['acks', 'timeoutMs', 'idempotent', 'onError'].includes(k)) return `unknown key ${k}`;
  if (value.acks !== undefined && !['all', 'leader', 'none'].includes(value.acks as string))
    return 'bad acks';
  if (value.idempotent !== undefined && typeof value.idempotent !== 'boolean')
    return 'idempotent not a boolean';
  if (value.onError !== undefined && typeof value.onError !== 'function') return 'onError not a function';
  const t = value.timeoutMs;
  if (t !== undefined && !(typeof t === 'number' && Number.isInteger(t) && t >= 1)) return 'bad timeoutMs';
  return undefined;
}

/** Why a message must be refused (topic, headers, unknown fields), or undefined when nothing says so. */
function invalidMessage(message: unknown): string | undefined {
  if (!isPlainObject(message)) return 'message not an object';
  for (const k of Object.keys(message))
    if (!['topic', 'body', 'key', 'tag', 'headers', 'id', 'delayMs'].includes(k)) return `unknown field ${k}`;
  const topic = invalidName(message.topic);
  if (topic !== undefined) return `topic: ${topic}`;
  const h = invalidHeaders(message.headers);
  if (h !== undefined) return h;
  if (message.key !== undefined && typeof message.key !== 'string') return 'key not a string';
  return undefined;
}

/** Why an `ensureTopic` spec must be refused: not an object, an unknown key, a bad partition count. */
function invalidSpec(spec: unknown): string | undefined {
  if (spec === undefined) return undefined;
  if (!isPlainObject(spec)) return 'spec not an object';
  for (const k of Object.keys(spec)) if (k !== 'partitions') return `unknown key ${k}`;
  const p = spec.partitions;
  if (p !== undefined && !(typeof p === 'number' && Number.isInteger(p) && p >= 1)) return 'bad partitions';
  return undefined;
}

/** Why subscribe options must be refused, for the rules the README states (names, unknown keys). */
function invalidSubscribe(options: unknown): string | undefined {
  if (!isPlainObject(options)) return 'options not an object';
  const allowed = [
    'topic',
    'group',
    'mode',
    'order',
    'concurrency',
    'tags',
    'startFrom',
    'retry',
    'deadLetter',
    'closeTimeoutMs',
  ];
  for (const k of Object.keys(options)) if (!allowed.includes(k)) return `unknown key ${k}`;
  const topic = invalidName(options.topic);
  if (topic !== undefined) return `topic: ${topic}`;
  if (options.group !== undefined) {
    const group = invalidName(options.group);
    if (group !== undefined) return `group: ${group}`;
  }
  return undefined;
}

export function apiFuzzSuite(target: ApiFuzzTarget): void {
  describe(`fuzz ${target.kind}: the public API with random and adversarial input`, () => {
    const watch = new ProcessWatch();
    const shared = spyLogger();
    const u = `fz${Date.now().toString(36).slice(-5)}${Math.random().toString(36).slice(2, 5)}`;
    const pool = [`${u}-a`, `${u}-b`, `${u}-c`];
    const internal =
      target.kind === 'memory'
        ? ['mq.delay.100ms', 'mq.delay.undeliverable', 'mq.retry', `mq.${u}`]
        : [`mq.${u}`, `mq.${u}.delay.100ms`];
    const topicNames = names({ pool, unique: `${u}-`, internal });
    const groupNames = names({ pool: ['g1', 'g2', 'g3'], unique: `${u}-g`, internal });
    let broker: Broker;
    let producer: Producer;
    const producerErrors: MqError[] = [];
    const bound = target.boundMs;
    const section = (outcome: Outcome<unknown>, what: string): void => {
      if (!outcome.ok) expectMqError(what, outcome.error);
    };

    /** After each case: no crash, nothing fatal logged out of shape. */
    const afterCase = async (where: string): Promise<void> => {
      await watch.flush();
      watch.expectNoCrash(where);
      if (shared.misshapen.length > 0)
        throw new Error(`logger called out of shape: ${shared.misshapen.join(', ')}`);
    };

    beforeAll(async () => {
      watch.install();
      broker = await connect(target.url(), { logger: shared.logger });
      producer = broker.producer({ timeoutMs: 5000, onError: (e) => producerErrors.push(e) });
      for (const t of pool) await broker.ensureTopic(t, { partitions: 2 });
    }, 120_000);

    afterAll(async () => {
      try {
        await settle('shared broker.close()', 30_000, () => broker?.close());
      } finally {
        watch.uninstall();
        console.log(summary(target.kind));
      }
    }, 60_000);

    it(
      'connect: settles in time with a broker or an MqError, refuses unknown options, leaks no password',
      async () => {
        const adapters = adapterOptions();
        const optionsArb = fc.oneof(
          {
            weight: 8,
            arbitrary: fc.record(
              {
                logger: loggerSlot,
                memory: adapters.memory,
                kafka: adapters.kafka,
                rabbitmq: adapters.rabbitmq,
                extra: fc.option(
                  fc.tuple(fc.constantFrom('memroy', 'rabbit', 'Kafka', 'amqp', 'logLevel'), weird),
                ),
              },
              { requiredKeys: ['logger'] },
            ),
          },
          { weight: 1, arbitrary: weird.map((value) => ({ whole: value })) },
        );
        await checkProperty(
          'connect',
          fc.tuple(target.urls, optionsArb),
          async ([fuzzUrl, spec]) => {
            const spy = spyLogger();
            let options: unknown;
            let unknown: string | undefined;
            const scheme = fuzzUrl.url.split(':')[0]?.toLowerCase() ?? '';
            if ('whole' in spec) {
              options = spec.whole;
              if (spec.whole !== undefined && !isPlainObject(spec.whole)) unknown = 'options not an object';
            } else {
              const o: Record<string, unknown> = {};
              o.logger = spec.logger === 'spy' ? spy.logger : spec.logger;
              if (spec.logger === undefined) delete o.logger;
              for (const name of ['memory', 'kafka', 'rabbitmq'] as const) {
                const s = spec[name];
                if (s === undefined) continue;
                o[name] = s.value;
                if (ADAPTER_SECTIONS[scheme] === name) {
                  if (s.unknownKey !== undefined) unknown = `${name}.${s.unknownKey}`;
                  else if (s.value !== undefined && !isPlainObject(s.value))
                    unknown = `${name} not an object`;
                }
              }
              if (spec.extra) {
                o[spec.extra[0]] = spec.extra[1];
                unknown ??= `top-level key ${spec.extra[0]}`;
              }
              options = o;
            }
            const outcome = await settle(`connect(${JSON.stringify(fuzzUrl.url.slice(0, 200))})`, bound, () =>
              connect(fuzzUrl.url, options as never),
            );
            const texts: string[] = [];
            if (outcome.ok) {
              const closed = await settle('broker.close() after a fuzzed connect', bound, () =>
                outcome.value.close(),
              );
              if (!closed.ok) {
                expectMqError('broker.close()', closed.error);
                texts.push(...errorTexts(closed.error));
              }
              if (unknown !== undefined)
                throw new Error(`connect accepted options it must refuse: ${unknown}`);
            } else {
              expectMqError('connect', outcome.error);
              texts.push(...errorTexts(outcome.error));
            }
            await afterCase('connect');
            const secrets = [
              ...optionSecrets(options),
              ...(fuzzUrl.password === undefined ? [] : [fuzzUrl.password]),
            ];
            const forms = secrets.flatMap((s) =>
              secretForms(s, s === fuzzUrl.password ? fuzzUrl.written : undefined),
            );
            if (forms.length > 0) {
              expectNoSecret('the error', texts, forms);
              expectNoSecret('a logged line', spy.lines, forms);
              expectNoSecret('a process warning', watch.warnings, forms);
              expectNoSecret('stdout/stderr', watch.output, forms);
            }
            if (spy.misshapen.length > 0)
              throw new Error(`logger called out of shape: ${spy.misshapen.join(', ')}`);
          },
          runs(target.weights.connect),
          TIME_LIMIT_MS,
        );
      },
      TIME_LIMIT_MS + 60_000,
    );

    it(
      'producer(options): returns a producer or throws a ConfigError (UnsupportedError for idempotent off Kafka), and refuses what is invalid',
      async () => {
        const arb = optionsOf(
          {
            acks: fc.oneof(fc.constantFrom('all', 'leader', 'none'), weird),
            timeoutMs: numberish,
            idempotent: fc.oneof(fc.boolean(), weird),
            onError: fc.oneof(
              fc.constant(() => {}),
              weird,
            ),
          },
          ['idempotence', 'onerror', 'retries', 'acks '],
        );
        await checkProperty(
          'producer',
          arb,
          async ({ value }) => {
            const outcome = await settle('broker.producer()', bound, () => broker.producer(value as never));
            const invalid = invalidProducerOptions(value);
            // Only Kafka has an idempotent producer; elsewhere asking for one is UNSUPPORTED.
            const unsupported =
              target.kind !== 'kafka' && isPlainObject(value) && value.idempotent === true
                ? 'idempotent: true without an idempotent producer'
                : undefined;
            if (outcome.ok) {
              const closed = await settle('producer.close()', bound, () => outcome.value.close());
              section(closed, 'producer.close()');
              if (invalid !== undefined || unsupported !== undefined)
                throw new Error(`producer() accepted options it must refuse: ${invalid ?? unsupported}`);
            } else {
              const error = expectMqError('producer()', outcome.error);
              const expected =
                unsupported !== undefined && invalid === undefined ? ['CONFIG', 'UNSUPPORTED'] : ['CONFIG'];
              if (!expected.includes(error.code))
                throw new Error(`producer(): expected ${expected.join(' or ')}, got ${describeError(error)}`);
            }
            await afterCase('producer');
          },
          runs(target.weights.producer),
          TIME_LIMIT_MS,
        );
      },
      TIME_LIMIT_MS + 60_000,
    );

    const messageArb = fc.oneof(
      {
        weight: 12,
        arbitrary: fc
          .record(
            {
              topic: topicNames,
              body: bodies(target.hugeBodies),
              key: keys,
              tag: idsOrTags,
              headers,
              id: idsOrTags,
              delayMs: fc.oneof(fc.constant(undefined), fc.constant(undefined), numberish),
              extra: fc.option(fc.tuple(fc.constantFrom('partition', 'timestamp', 'topics', 'Body'), weird)),
            },
            { requiredKeys: ['topic', 'body'] },
          )
          .map(({ extra, ...m }) => {
            const message: Record<string, unknown> = { ...m };
            for (const k of Object.keys(message))
              if (message[k] === undefined && k !== 'body') delete message[k];
            if (extra) message[extra[0]] = extra[1];
            return message as unknown;
          }),
      },
      { weight: 1, arbitrary: weird },
    );

    it(
      'send and sendBatch: settle in time, fail only with MqErrors, refuse bad messages, never stall the producer',
      async () => {
        const op = fc.oneof(
          { weight: 4, arbitrary: messageArb.map((m) => ({ kind: 'send' as const, m })) },
          {
            weight: 1,
            arbitrary: fc
              .oneof(fc.array(messageArb, { minLength: 1, maxLength: 3 }), weird)
              .map((m) => ({ kind: 'sendBatch' as const, m })),
          },
        );
        await checkProperty(
          'send',
          op,
          async ({ kind, m }) => {
            const outcome =
              kind === 'send'
                ? await settle('producer.send()', bound, () => producer.send(m as never))
                : await settle('producer.sendBatch()', bound, () => producer.sendBatch(m as never));
            const invalid =
              kind === 'send'
                ? invalidMessage(m)
                : Array.isArray(m)
                  ? m.map(invalidMessage).find((r) => r !== undefined)
                  : 'not an array';
            if (outcome.ok) {
              if (invalid !== undefined)
                throw new Error(`${kind} accepted a message it must refuse: ${invalid}`);
            } else {
              expectMqError(kind, outcome.error);
              // One refused message must not hold up the next (issue 9, item 1).
              const canary = await settle('a valid send after a refused one', bound, () =>
                producer.send({ topic: pool[0] as string, body: { canary: true } }),
              );
              if (!canary.ok)
                throw new Error(
                  `the producer stalled: a valid send after ${kind} was refused (${describeError(outcome.error)}) failed: ${describeError(canary.error)}`,
                );
            }
            await afterCase(kind);
          },
          runs(target.weights.send),
          TIME_LIMIT_MS,
        );
      },
      TIME_LIMIT_MS + 60_000,
    );

    it(
      'sendOneWay: never throws, reports failures to onError as MqErrors, survives a throwing onError',
      async () => {
        await checkProperty(
          'sendOneWay',
          fc.tuple(messageArb, fc.constantFrom('collect', 'throw')),
          async ([m, onErrorKind]) => {
            const reported: unknown[] = [];
            const p = broker.producer({
              onError: (error) => {
                reported.push(error);
                if (onErrorKind === 'throw') throw new Error('onError itself throws');
              },
            });
            try {
              p.sendOneWay(m as never);
            } catch (error) {
              throw new Error(`sendOneWay threw synchronously: ${describeError(error)}`);
            }
            const closed = await settle('producer.close() after sendOneWay', bound, () => p.close());
            section(closed, 'producer.close()');
            for (const r of reported) expectMqError('onError argument', r);
            const invalid = invalidMessage(m);
            if (invalid !== undefined && reported.length === 0)
              throw new Error(
                `sendOneWay of a message it must refuse (${invalid}) reported nothing to onError`,
              );
            await afterCase('sendOneWay');
          },
          runs(target.weights.oneWay),
          TIME_LIMIT_MS,
        );
      },
      TIME_LIMIT_MS + 60_000,
    );

    it(
      'subscribe and Subscription.close: settle in time, fail only with MqErrors, refuse bad options',
      async () => {
        const retry = optionsOf(
          {
            attempts: numberish,
            backoff: fc.oneof(
              optionsOf({ initialMs: numberish, multiplier: numberish, maxMs: numberish }, ['factor']).map(
                (o) => o.value,
              ),
            ),
          },
          ['max', 'attempt'],
        ).map((o) => o.value);
        const arb = optionsOf(
          {
            topic: topicNames,
            group: groupNames,
            mode: fc.oneof(fc.constantFrom('clustering', 'broadcasting'), weird),
            order: fc.oneof(fc.constantFrom('concurrent', 'key', 'partition'), weird),
            concurrency: fc.oneof(fc.integer({ min: 1, max: 8 }), numberish),
            tags: fc.oneof(fc.array(idsOrTags, { maxLength: 3 }), weird),
            startFrom: fc.oneof(
              fc.constantFrom('earliest', 'latest'),
              numberish.map((timestamp) => ({ timestamp })),
              weird,
            ),
            retry,
            deadLetter: fc.oneof(
              fc.constant('discard'),
              topicNames.map((topic) => ({ topic })),
              fc.constant({}),
              weird,
            ),
            closeTimeoutMs: numberish,
          },
          ['groupId', 'prefetch', 'retries', 'dlq'],
        );
        const closeArgs = fc.oneof(
          fc.constant(undefined),
          numberish.map((timeoutMs) => ({ timeoutMs })),
          optionsOf({ timeoutMs: numberish }, ['force']).map((o) => o.value),
          weird,
        );
        const handlerArb = fc.oneof(
          { weight: 8, arbitrary: fc.constant(() => {}) },
          { weight: 1, arbitrary: weird },
        );
        await checkProperty(
          'subscribe',
          fc.tuple(arb, handlerArb, closeArgs),
          async ([{ value }, handler, closeWith]) => {
            const outcome = await settle('broker.subscribe()', bound, () =>
              broker.subscribe(value as never, handler as never),
            );
            const invalid =
              invalidSubscribe(value) ??
              (typeof handler === 'function' ? undefined : 'handler not a function');
            if (!outcome.ok) {
              expectMqError('subscribe', outcome.error);
            } else {
              const first = await settle('subscription.close(fuzzed)', bound, () =>
                outcome.value.close(closeWith as never),
              );
              if (!first.ok) {
                expectMqError('subscription.close(fuzzed)', first.error);
                const second = await settle('subscription.close()', bound, () => outcome.value.close());
                section(second, 'subscription.close()');
              }
              if (invalid !== undefined)
                throw new Error(`subscribe accepted options it must refuse: ${invalid}`);
            }
            await afterCase('subscribe');
          },
          runs(target.weights.subscribe),
          TIME_LIMIT_MS,
        );
      },
      TIME_LIMIT_MS + 60_000,
    );

    it(
      'ensureTopic and backlog: settle in time, fail only with MqErrors, refuse bad names and specs',
      async () => {
        const spec = fc.oneof(
          { weight: 2, arbitrary: fc.constant(undefined) },
          {
            weight: 6,
            arbitrary: optionsOf({ partitions: safePartitions }, ['partitionz', 'replication', 'retention']),
          },
          { weight: 1, arbitrary: weird.map((value) => ({ value })) },
        );
        await checkProperty(
          'ensureTopic',
          fc.tuple(topicNames, spec, groupNames),
          async ([name, s, group]) => {
            const specValue = s === undefined ? undefined : s.value;
            const ensured = await settle('broker.ensureTopic()', bound, () =>
              broker.ensureTopic(name as never, specValue as never),
            );
            const invalid = invalidName(name) ?? invalidSpec(specValue);
            if (ensured.ok) {
              if (invalid !== undefined)
                throw new Error(`ensureTopic accepted what it must refuse: ${invalid}`);
            } else expectMqError('ensureTopic', ensured.error);
            const backlog = await settle('broker.backlog()', bound, () =>
              broker.backlog(name as never, group as never),
            );
            if (backlog.ok) {
              const why = invalidName(name) ?? invalidName(group);
              if (why !== undefined) throw new Error(`backlog accepted a name it must refuse: ${why}`);
              if (!Number.isSafeInteger(backlog.value.total) || backlog.value.total < 0)
                throw new Error(`backlog total ${backlog.value.total}`);
            } else expectMqError('backlog', backlog.error);
            await afterCase('ensureTopic');
          },
          runs(target.weights.topics),
          TIME_LIMIT_MS,
        );
      },
      TIME_LIMIT_MS + 60_000,
    );

    it('the shared connection logged in shape, onError got only MqErrors, nothing was written to stdout/stderr', async () => {
      await afterCase('end of suite');
      for (const e of producerErrors) expectMqError('onError argument', e);
      // mqkit never writes there itself, and routes its client libraries' logging through its logger.
      if (watch.output.length > 0)
        throw new Error(
          `${watch.output.length} writes to stdout/stderr during the suite, e.g. ${watch.output
            .slice(0, 3)
            .map((l) => JSON.stringify(l.slice(0, 300)))
            .join(' | ')}`,
        );
    });
  });
}
