import { describe, expect, it } from 'vitest';
import { serverProperties } from '../infra/kafka-config.js';

describe('Kafka test brokers: extra client listeners advertised at fault proxies', () => {
  const props = (text: string): Record<string, string> =>
    Object.fromEntries(
      text
        .trim()
        .split('\n')
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );

  it('adds EXT<i> listeners on their ports, advertised at the proxy ports; brokers still talk over PLAINTEXT', () => {
    const p = props(
      serverProperties(
        {
          id: 2,
          brokerPort: 9001,
          controllerPort: 9002,
          dir: '/tmp/x',
          external: [
            { port: 9003, advertisedPort: 7003 },
            { port: 9004, advertisedPort: 7004 },
          ],
        },
        '1@127.0.0.1:1',
        3,
      ),
    );
    expect(p.listeners).toBe(
      'PLAINTEXT://127.0.0.1:9001,CONTROLLER://127.0.0.1:9002,EXT0://127.0.0.1:9003,EXT1://127.0.0.1:9004',
    );
    expect(p['advertised.listeners']).toBe(
      'PLAINTEXT://127.0.0.1:9001,EXT0://127.0.0.1:7003,EXT1://127.0.0.1:7004',
    );
    expect(p['listener.security.protocol.map']).toBe(
      'CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,EXT0:PLAINTEXT,EXT1:PLAINTEXT',
    );
    expect(p['inter.broker.listener.name']).toBe('PLAINTEXT');
  });

  it('without external listeners, the configuration is as before', () => {
    const p = props(
      serverProperties({ id: 1, brokerPort: 9001, controllerPort: 9002, dir: '/tmp/x' }, 'v', 1),
    );
    expect(p.listeners).toBe('PLAINTEXT://127.0.0.1:9001,CONTROLLER://127.0.0.1:9002');
    expect(p['advertised.listeners']).toBe('PLAINTEXT://127.0.0.1:9001');
  });
});
