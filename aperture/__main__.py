import sys

from aperture.cli.main import main

sys.exit(main())
