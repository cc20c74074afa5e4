import t from 'tap';
import { ROOT_CONTEXT, TraceFlags, trace } from '@opentelemetry/api';
import { createPropagators } from '../../src/telemetry/otel';
import { PooledIdGenerator } from '../../src/telemetry/ids';
import { FLAT_LIST_SETTER } from '../../src/telemetry/request-trace';
import type { Propagator } from '../../src/config/types';

// The headers of a declined new trace are written without the injector; they must be what it
// would write for the same ids, for every list of propagators the config accepts.
const LISTS: Propagator[][] = [[], ['tracecontext'], ['baggage'], ['b3'], ['tracecontext', 'baggage'], ['tracecontext', 'b3'], ['baggage', 'b3'], ['tracecontext', 'baggage', 'b3']];

t.test('a declined new trace gets the headers the injector writes for it, in its order', async (t) => {
  const ids = new PooledIdGenerator();
  for (const listed of LISTS) {
    const propagators = createPropagators(listed);
    const traceId = ids.generateTraceId();
    const spanId = ids.generateSpanId();
    const injected: string[] = [];
    const span = trace.wrapSpanContext({ traceId, spanId, traceFlags: TraceFlags.NONE });
    propagators.injector.inject(trace.setSpan(ROOT_CONTEXT, span), injected, FLAT_LIST_SETTER);
    t.same(propagators.declinedTraceHeaders(traceId, spanId), injected, `propagators [${listed.join(', ')}]`);
    t.ok(injected.includes('traceparent'), 'traceparent is always written');
  }
});
