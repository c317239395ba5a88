from .info_nce_loss import InfoNCELoss, info_nce

__all__ = ['InfoNCELoss', 'info_nce']
