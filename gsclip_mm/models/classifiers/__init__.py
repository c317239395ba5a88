from .gsclip import GSCLIP

__all__ = ['GSCLIP']
