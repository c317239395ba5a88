from .gsclip_preprocessor import GSCLIPDataPreprocessor

__all__ = ['GSCLIPDataPreprocessor']
