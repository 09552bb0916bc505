import { context, trace, SpanStatusCode, type Span, type Tracer } from '@opentelemetry/api';

/** The tracer every span of ours comes from. Without a registered provider it is a no-op. */
export const tracer: Tracer = trace.getTracer('foliograph');

/**
 * Registers an OpenTelemetry provider exporting spans over OTLP/HTTP when an endpoint is set
 * (OTEL_EXPORTER_OTLP_ENDPOINT, read by the exporter itself, with the other OTEL_* variables).
 * Without one nothing is loaded and every span call is the API's no-op: tracing costs nothing.
 * Returns a function that flushes and shuts the provider down.
 */
export async function startTracing(endpoint: string | undefined, serviceName = 'foliograph'): Promise<() => Promise<void>> {
  if (!endpoint) return async () => {};
  const [{ NodeTracerProvider }, { BatchSpanProcessor }, { OTLPTraceExporter }, { resourceFromAttributes }] = await Promise.all([
    import('@opentelemetry/sdk-trace-node'),
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
  ]);
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': serviceName }),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  provider.register();
  return () => provider.shutdown();
}

/** Runs `fn` inside a span (its child spans nest under it); records an error and ends the span. */
export async function inSpan<T>(name: string, attributes: Record<string, string | number | boolean>, fn: (span: Span) => Promise<T>): Promise<T> {
  const span = tracer.startSpan(name, { attributes });
  try {
    return await context.with(trace.setSpan(context.active(), span), () => fn(span));
  } catch (e) {
    span.recordException(e as Error);
    span.setStatus({ code: SpanStatusCode.ERROR });
    throw e;
  } finally {
    span.end();
  }
}
