"""Put receiver_demo/ on sys.path, as `python receiver.py` does, so `import verify` works."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
