/**
 * `run()`, or undefined if it threw. Around every call into the OpenTelemetry API and SDK:
 * tracing must never change what happens to a message, whatever a tracer, exporter or
 * propagator does.
 */
export function quietly<R>(run: () => R): R | undefined {
  try {
    return run();
  } catch {
    return undefined;
  }
}
