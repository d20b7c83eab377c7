from digitnet.cli import main
from digitnet.training.distributed import end_launched_process

# Under torchrun (torchrun ... -m digitnet train) the process ends without interpreter teardown:
# see end_launched_process.
raise SystemExit(end_launched_process(main()))
