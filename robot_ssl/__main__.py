import sys

from robot_ssl.cli.main import main

sys.exit(main())
