"""Files: reading yields a Series (pixels, axes, metadata) and writing takes one back (stacks); 2-D pages for
training and evaluation (images); output paths and their checks (paths). Nothing past this layer looks at a
file format."""
