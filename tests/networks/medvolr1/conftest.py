import pytest


@pytest.fixture(scope="module")
def items():
    """Query items of two tiny synthetic abdominal studies on a 16 x 64 px sequence."""
    from lib.networks.medvolr1.samples import synthetic_items

    return synthetic_items([0, 1], "tiny", 16, 64, keep_source=True)
