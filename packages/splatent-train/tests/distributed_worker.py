"""One process of the 2-process test: ``torchrun --nproc_per_node 2 distributed_worker.py CONFIG.json``."""

import json
import sys

from splatent_train import TrainConfig, train_enhancer

if __name__ == "__main__":
    config = TrainConfig.from_json(json.loads(open(sys.argv[1]).read()))
    result = train_enhancer(config)
    print(result.summary())
    import torch.distributed as dist

    dist.destroy_process_group()  # a program's end under torchrun (as the splatent CLI's): gloo aborts at exit otherwise
