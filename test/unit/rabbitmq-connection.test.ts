import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { connectError } from '../../src/adapters/rabbitmq/connection.js';
import { ConnectionError } from '../../src/core/errors.js';

// amqplib's own texts (lib/connection.js): a close during the handshake, and a close answering
// connection.open (an unknown virtual host, or one the user may not use).
const LOGIN_REFUSED =
  'Handshake terminated by server: 403 (ACCESS-REFUSED) with message "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."';
const OPEN_REFUSED = 'Expected ConnectionOpenOk; got <ConnectionClose channel:0>';

const url = (text: string) => new URL(text);

describe('connectError', () => {
  it('keeps a refused or unreachable port retriable, whatever its number', () => {
    for (const port of [403, 530]) {
      const socket = Object.assign(new Error(`connect ECONNREFUSED 127.0.0.1:${port}`), {
        code: 'ECONNREFUSED',
      });
      const error = connectError(socket, url(`amqp://guest:guest@127.0.0.1:${port}/`), 1000);
      expect(error.retriable).toBe(true);
      expect(error.message).toContain(`ECONNREFUSED 127.0.0.1:${port}`);
      expect(error.message).not.toMatch(/refused the login|virtual host/);
    }
    const dns = connectError(
      new Error('getaddrinfo ENOTFOUND rabbit-403.example'),
      url('amqp://guest:guest@rabbit-403.example/'),
      1000,
    );
    expect(dns.retriable).toBe(true);
  });

  it("classifies amqplib's refused login and refused virtual host as not retriable", () => {
    const login = connectError(new Error(LOGIN_REFUSED), url('amqp://alice:pw@127.0.0.1/'), 1000);
    expect(login.retriable).toBe(false);
    expect(login.message).toContain("refused the login of user 'alice'");
    const vhost = connectError(new Error(OPEN_REFUSED), url('amqp://alice:pw@127.0.0.1/shop'), 1000);
    expect(vhost.retriable).toBe(false);
    expect(vhost.message).toContain("virtual host 'shop'");
    expect(vhost.message).toContain("user 'alice'");
  });

  it('names no user whose URL has no password: a lone user info may be a token', () => {
    const target = url('amqps://TOKEN123@127.0.0.1/v?password=abc');
    for (const text of [LOGIN_REFUSED, OPEN_REFUSED, 'connect ECONNREFUSED 127.0.0.1:5671']) {
      const error = connectError(new Error(`${text} (TOKEN123)`), target, 1000);
      const all = `${inspect(error, { depth: 10 })}\n${error.stack}`;
      expect(all).not.toContain('TOKEN123');
      expect(all).not.toContain('abc');
    }
  });

  it('turns an error with a circular own property into a ConnectionError with the password hidden', () => {
    const cause = Object.assign(new Error('socket closed for guest:s3cr3t'), {
      code: 'ECONNRESET',
    }) as Error & {
      self?: unknown;
    };
    cause.self = cause;
    const error = connectError(cause, url('amqp://guest:s3cr3t@127.0.0.1/'), 1000);
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error.retriable).toBe(true);
    expect(inspect(error, { depth: 10 })).not.toContain('s3cr3t');
    expect((error.cause as { code?: unknown }).code).toBe('ECONNRESET');
  });
});
