# The OpenMMLab name of the embedded default (metafile.yml): its settings are in pointnet2_gaf_synthetic.py.
_base_ = ['./pointnet2_gaf_synthetic.py']
