"""RecordRing.publish packs plain numeric records without numpy (src/ringbus/_pack.pxd): what
it stores must be byte for byte what numpy stores, and what numpy refuses must still be
refused with numpy's error. Checked against numpy itself over generated dtypes and values."""
import warnings

import pytest

np = pytest.importorskip("numpy")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from ringbus import RecordRing  # noqa: E402

KINDS = ["i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f4", "f8", "b1",
         # not packed here (numpy's path): float16, a subarray field
         "f2"]
ORDERS = ["<", ">", "="]

values = st.one_of(
    st.integers(min_value=-2**70, max_value=2**70),
    st.integers(min_value=-300, max_value=300),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.sampled_from([np.int64(3), np.float32(1.5), "7", None, 1 + 2j, [1]]),
)


@st.composite
def dtypes(draw):
    n = draw(st.integers(1, 5))
    fields = [(f"f{i}", draw(st.sampled_from(ORDERS)) + draw(st.sampled_from(KINDS)))
              for i in range(n)]
    if draw(st.booleans()):
        fields.append(("sub", "<i4", (2,)))
    return np.dtype(fields, align=draw(st.booleans()))


def numpy_record(dt, record):
    """What numpy makes of ``record`` (bytes), or the type of the error it raises."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            arr = np.array(record, dtype=dt)
    except (TypeError, ValueError, OverflowError, RuntimeWarning) as exc:
        return type(exc)
    return arr.tobytes() if arr.shape in ((), (1,)) else ValueError


def ring_record(dt, record, verb):
    ring = RecordRing(dt, 2)
    got = []
    ring.subscribe(lambda view: got.append(view.tobytes()))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            published = getattr(ring, verb)(record)
    except (TypeError, ValueError, OverflowError, RuntimeWarning) as exc:
        return type(exc)
    finally:
        ring.drain()
        ring.close()
    assert published
    return got[0]


def same(dt, record, verb="publish"):
    want = numpy_record(dt, record)
    got = ring_record(dt, record, verb)
    if isinstance(want, bytes) and isinstance(got, bytes) and dt.names is not None:
        # numpy leaves the padding between fields as it found it; compare the fields.
        want, got = (tuple(np.frombuffer(b, dt)[name].tobytes() for name in dt.names)
                     for b in (want, got))
    assert got == want, (dt, record)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), verb=st.sampled_from(["publish", "try_publish"]))
def test_structured_records_are_stored_as_numpy_stores_them(data, verb):
    dt = data.draw(dtypes())
    record = tuple(data.draw(values) for _ in dt.names)
    if "sub" in dt.names:
        record = record[:-1] + ((1, 2),)
    same(dt, record, verb)


@settings(max_examples=200, deadline=None)
@given(kind=st.sampled_from(KINDS), order=st.sampled_from(ORDERS), value=values)
def test_plain_records_are_stored_as_numpy_stores_them(kind, order, value):
    same(np.dtype(order + kind), value)


@pytest.mark.parametrize("record", [(1,), (1, 2.0, 3), [1, 2.0], {"a": 1}, 5])
def test_wrong_shapes_are_numpys_errors(record):
    dt = np.dtype([("a", "<i8"), ("b", "<f8")])
    with pytest.raises((TypeError, ValueError), match="record"):
        RecordRing(dt, 2).publish(record)


def test_padding_is_zero_and_byte_order_honoured():
    dt = np.dtype([("a", "u1"), ("b", ">i4"), ("c", "<f8")], align=True)
    ring = RecordRing(dt, 2)
    got = []
    ring.subscribe(lambda view: got.append(view.tobytes()))
    ring.publish((255, -2, 0.5))
    ring.drain()
    assert got == [np.zeros(1, dt).tobytes()[:0] + bytes([255, 0, 0, 0]) +
                   (-2).to_bytes(4, "big", signed=True) + np.float64(0.5).tobytes()]
