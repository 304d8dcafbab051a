import sys

from latlab.bots.robot import main

sys.exit(main())
