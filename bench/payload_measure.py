"""Payload size measure (issue 11), before: orjson.dumps(model_dump(mode="json")), after: pydantic-core to_json (what envelope.Payload uses); process CPU per payload, medians of 3, alternately. Run from the repository root."""
import statistics, time, orjson
from events import codec
rows = [orjson.loads(l) for l in open("tests/fixtures/recorded_log/log.jsonl", "rb").read().splitlines() if l.strip()]
evs = []
for r in rows:
    try: evs.append(codec.decode(r["value"].encode()))
    except Exception: pass
big = codec.build("DocumentPassCompleted", "run_1", {"document_id": "d", "pass_index": 0, "output": {f"k{i}": {"v": i * 0.5, "t": "é" * 20} for i in range(500)}}, org_id="o", producer="p")
def per_event(f, payloads, n):
    t = time.process_time()
    for _ in range(n):
        for p in payloads: f(p)
    return (time.process_time() - t) / n / len(payloads) * 1e6
before = lambda p: len(orjson.dumps(p.model_dump(mode="json")))
after = lambda p: len(p.__pydantic_serializer__.to_json(p))
for name, payloads, n in [("recorded log (72 events)", [e.payload for e in evs], 300), ("pass with 500-key output", [big.payload], 300)]:
    b, a = [], []
    for _ in range(3):
        b.append(per_event(before, payloads, n)); a.append(per_event(after, payloads, n))
    mb, ma = statistics.median(b), statistics.median(a)
    print(f"{name}: before {mb:.2f} us, after {ma:.2f} us per event, {mb/ma:.2f}x")
