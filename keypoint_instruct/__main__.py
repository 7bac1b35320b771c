import sys

from keypoint_instruct.cli import main

sys.exit(main())
