"""Beyond one image in memory: large TIFFs streamed in bands (stream), many files overlapped (batch), and Dask
clusters (cluster)."""
