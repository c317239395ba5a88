from .info_nce_loss import InfoNCELoss, info_nce
from .nt_xent_loss import NTXentLoss, nt_xent

__all__ = ['InfoNCELoss', 'info_nce', 'NTXentLoss', 'nt_xent']
