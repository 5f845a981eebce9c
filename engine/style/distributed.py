"""torch.distributed for a style run: set-up and teardown, rank, each process's rows, the sums they share."""
from __future__ import annotations

import logging
import os

import numpy as np
import torch
import torch.distributed as dist

from engine.style.lora import TrainError, check_device

log = logging.getLogger(__name__)


class ProcessGroup:
    """This process's place in a torchrun group (or alone): rank, world size, and the few
    collectives the run needs. Only rank 0 writes files and prints."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank, self.local_rank, self.owned = 0, int(os.environ.get("LOCAL_RANK", "0")), False
        self.device = torch.device("cpu")

    def start(self, device: str) -> torch.device:
        if self.world > 1:
            if not dist.is_available():
                raise TrainError(f"WORLD_SIZE is {self.world} but this torch has no torch.distributed")
            self.device = check_device(device, self.local_rank)
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            if not dist.is_initialized():
                dist.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")
                self.owned = True
            self.rank, self.world = dist.get_rank(), dist.get_world_size()
            log.info("process %d of %d on %s", self.rank, self.world, self.device)
        else:
            self.device = check_device(device)
        return self.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, rows: np.ndarray) -> np.ndarray:
        """This process's rows of an array every process holds whole: every world-th, from its rank."""
        return rows[self.rank::self.world]

    def sum(self, *values: float) -> list[float]:
        if self.world == 1:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def any(self, flag: bool) -> bool:
        return self.sum(float(flag))[0] > 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.owned:
            dist.destroy_process_group()
            self.owned = False
