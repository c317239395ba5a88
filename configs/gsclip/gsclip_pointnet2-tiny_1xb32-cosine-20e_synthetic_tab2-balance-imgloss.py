# Table 2, row 3: data balance and image loss, no GAF, on the synthetic set.
# The rows, and how we read Table 2: gsclip_mm/utils/config_variants.py.
_base_ = ['./pointnet2_gaf_synthetic.py']
from gsclip_mm.utils.config_variants import table2_row  # noqa: E402

model, train_pipeline, train_dataloader, val_evaluator, test_evaluator = table2_row(
    'balance-imgloss', _base_.train_pipeline, _base_.train_dataloader, _base_.val_evaluator)
