"""An evl plugin that fails at import, as one with a missing dependency does."""

raise ImportError("evl_broken needs a module that is not installed")
