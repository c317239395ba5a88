# The OpenMMLab name of GS-CLIP's paper config (metafile.yml): its settings are in pointnet2_gaf_sunrgbd.py.
_base_ = ['./pointnet2_gaf_sunrgbd.py']
