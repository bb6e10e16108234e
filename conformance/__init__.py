"""AdaMax conformance suite: torch.optim.Adamax against mindspore.nn.AdaMax and other implementations.

`convert_state` (conformance/porting/adamax_state.py) is the one function meant for use outside the
suite: an Adamax optimizer state from torch's layout to MindSpore's and back.
"""
from conformance.porting.adamax_state import convert_state

__all__ = ["convert_state"]
