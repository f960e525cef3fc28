"""Payloads of the loading tests: a pickle that runs code when unpickled, and a
TorchScript module whose __setstate__ (run by torch.jit.load) overwrites 4 bytes of any
file it is given. TorchScript needs the source in a file, so they live here."""

import torch


class WritesAFile:
    """A pickle that runs code when loaded: what an attacker puts in a `.pt` or a
    `.pdiparams.info` (it creates `target`)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


class OverwritesAFile(torch.nn.Module):
    """Scripted: forward is x @ weight; loading it writes b"XXXX" into `victim`."""

    def __init__(self, victim: str) -> None:
        super().__init__()
        self.victim = victim
        self.weight = torch.ones(3, 2)

    def forward(self, x):
        return x @ self.weight

    @torch.jit.export
    def __getstate__(self):
        return (self.victim, self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, torch.Tensor, bool]):
        self.victim = state[0]
        self.weight = state[1]
        self.training = state[2]
        t = torch.from_file(self.victim, shared=True, size=4, dtype=torch.uint8)
        t.fill_(88)
        self.weight = self.weight + t[:1].float() * 0
