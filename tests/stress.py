"""What the stress tests share: how big to make a run, and how a payload encodes its origin."""
import os

#: Sanitizer builds run 5-20x slower: .ci/sanitize sets RINGBUS_STRESS_SCALE=0.1.
SCALE = float(os.environ.get("RINGBUS_STRESS_SCALE", "1"))

#: A payload is (producer id << SHIFT) | sequence number within that producer.
SHIFT = 32


def scaled(n):
    """``n`` events scaled by RINGBUS_STRESS_SCALE, never fewer than 1,000."""
    return max(1000, int(n * SCALE))
