"""Signatures and help, as IDEs and Jupyter read them: inspect.signature() works on every
public class and method, the constructors' signatures (hand-written text signatures of the
compiled classes) say exactly what the constructors accept, and help() documents every
constructor option."""
import inspect
import pydoc

import pytest

import ringbus

try:
    import numpy as np     # at module level: .ci/sanitize leaves such files out of its leak check
except ImportError:        # pragma: no cover
    np = None

PUBLIC = [getattr(ringbus, name) for name in ringbus.__all__ if name != "__version__"]
CLASSES = [obj for obj in PUBLIC if isinstance(obj, type)]


def _methods():
    out = []
    for cls in CLASSES:
        if issubclass(cls, BaseException):
            continue                     # their methods are BaseException's
        for name in dir(cls):
            if name.startswith("_") and name not in ("__enter__", "__exit__"):
                continue
            attr = inspect.getattr_static(cls, name)
            if isinstance(attr, (property, type)) or not callable(getattr(cls, name)):
                continue
            if type(attr).__name__ == "getset_descriptor":
                continue
            out.append(pytest.param(cls, name, id=f"{cls.__name__}.{name}"))
    return out


@pytest.mark.parametrize("cls,name", _methods())
def test_every_public_method_has_a_signature(cls, name):
    sig = inspect.signature(getattr(cls, name))
    assert sig is not None


@pytest.mark.parametrize("obj", PUBLIC, ids=[getattr(o, "__name__", repr(o)) for o in PUBLIC])
def test_every_public_callable_has_a_signature(obj):
    if not callable(obj):
        return                           # a constant (ringbus.STOP)
    if isinstance(obj, type) and issubclass(obj, BaseException):
        return                           # exceptions take whatever BaseException takes
    if isinstance(obj, type) and obj.__name__ in ("Stage", "Subscription", "EventInfo",
                                                  "Request", "PatternSubscription"):
        return                           # made by the library, not by users
    inspect.signature(obj)


def _make(cls, **kwargs):
    if cls is ringbus.RecordRing:
        if np is None:
            pytest.skip("numpy is needed for record rings")
        return cls(np.dtype("<i8"), **kwargs)
    return cls(**kwargs)


@pytest.mark.parametrize("cls", [ringbus.Bus, ringbus.RingBuffer, ringbus.RecordRing,
                                 ringbus.MessageRing], ids=lambda c: c.__name__)
def test_constructor_signature_is_the_real_one(cls):
    sig = inspect.signature(cls)
    params = [p for p in sig.parameters.values() if p.name != "dtype"]
    # Every parameter, given its documented default by keyword, is accepted...
    obj = _make(cls, **{p.name: p.default for p in params if p.kind is p.KEYWORD_ONLY})
    for p in params:
        setting = getattr(obj, p.name, None)
        if isinstance(setting, str):
            assert setting == p.default, p.name
    # ...a keyword-only one given by position is refused, and so is an unknown keyword.
    with pytest.raises(TypeError):
        _make(cls, no_such_option=1)
    positional = [p for p in sig.parameters.values()
                  if p.kind is p.POSITIONAL_OR_KEYWORD]
    extra = [8] * (len(positional) + 1)
    if cls is ringbus.RecordRing:
        extra[0] = np.dtype("<i8") if np is not None else None
    with pytest.raises(TypeError):
        cls(*extra)


@pytest.mark.parametrize("cls,options", [
    (ringbus.Bus, ["on_error", "max_depth", "capacity", "producers", "overflow", "wait",
                   "backlog", "close_timeout", "metrics"]),
    (ringbus.RingBuffer, ["capacity", "producers", "overflow", "wait", "backlog"]),
    (ringbus.RecordRing, ["dtype", "capacity", "producers", "overflow", "wait",
                          "unblock_timeout", "on_error", "shared"]),
    (ringbus.MessageRing, ["capacity_bytes", "producers", "overflow", "wait", "unblock_timeout",
                           "on_error", "shared", "codec"]),
], ids=lambda v: getattr(v, "__name__", ""))
def test_help_documents_every_constructor_option(cls, options):
    text = pydoc.render_doc(cls, renderer=pydoc.plaintext)
    assert list(inspect.signature(cls).parameters) == options
    for option in options:
        assert f"\n |  {option} : " in text or f" {option}," in text, option
    # The class header shows the real signature.
    assert f"{cls.__name__}({str(inspect.signature(cls))[1:]}" in text
