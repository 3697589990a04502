import sys

from gradio_app.app import main

sys.exit(main())
