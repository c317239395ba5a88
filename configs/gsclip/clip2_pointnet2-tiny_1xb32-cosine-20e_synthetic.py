# The CLIP^2-style baseline of Table 1 on the synthetic set: the same PointNet++ on the scanned points' positions and
# colours (no Gaussian fitting), no GAF, the same data balance (gsclip_mm/utils/config_variants.py).
_base_ = ['./pointnet2_gaf_synthetic.py']
from gsclip_mm.utils.config_variants import clip2_baseline  # noqa: E402

(model, train_pipeline, test_pipeline, train_dataloader, val_dataloader, test_dataloader, val_evaluator,
 test_evaluator) = clip2_baseline(_base_.num_points, _base_.train_pipeline, _base_.test_pipeline, _base_.val_evaluator)
