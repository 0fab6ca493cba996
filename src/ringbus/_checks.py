"""Argument checks shared by the constructors and the cold verbs (never per event).

A wrong *type* is a TypeError, a wrong *value* a ValueError; both name the argument and what
was expected, in ringbus's words rather than a C conversion's ("cannot be interpreted as an
integer", "too large to convert to C ssize_t").
"""
import operator


def int_arg(name, value, *, low, high=None, none_ok=False, rule=None):
    """``value`` as an int in ``[low, high]``; None passes through if ``none_ok``.

    ``rule`` replaces the range in the ValueError's wording (say, "a power of two between 2
    and 1073741824"); the caller checks anything beyond the range itself."""
    if value is None and none_ok:
        return None
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        expected = "an int or None" if none_ok else "an int"
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    v = operator.index(value)
    if v < low or (high is not None and v > high):
        if rule is None:
            rule = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be {'None or ' if none_ok else ''}{rule}, got {v}")
    return v


def bool_arg(name, value):
    """``value`` as a bool: True or False only (a numpy bool too). A str such as "no" is
    truthy, so taking any object would do the opposite of what was meant."""
    if isinstance(value, bool) or (type(value).__module__ == "numpy"
                                   and type(value).__name__ in ("bool", "bool_")):
        return bool(value)
    raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")


def power_of_two_arg(name, value, high):
    """A capacity: an int, a power of two between 2 and ``high``."""
    rule = f"a power of two between 2 and {high}"
    v = int_arg(name, value, low=2, high=high, rule=rule)
    if v & (v - 1):
        raise ValueError(f"{name} must be {rule}, got {v}")
    return v
