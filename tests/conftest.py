import os.path as osp
import sys

# The toy components of the tools' tests are imported by name from configs.
sys.path.insert(0, osp.join(osp.dirname(osp.abspath(__file__)), 'data'))
