"""MONAI transforms shared by the infer and train tasks."""
