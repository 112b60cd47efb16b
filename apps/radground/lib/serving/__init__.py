"""Request handling around the MONAI Label tasks: input guards, report lookup, error mapping."""
