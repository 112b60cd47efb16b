"""Writers: label maps on the input grid with their segment names, and the result JSON."""
