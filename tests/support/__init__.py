"""What the tests and the benches share, one copy of each (the benches put ``tests/`` on
``sys.path`` through ``benches/_tests_path.py``). Light on purpose: import the module you need.

- :mod:`support.bands`: the Sentinel-2 and Sentinel-1 band lists (standard library only);
- :mod:`support.bigearthnet`: BigEarthNet's tiles, patch names, source
  directories as ``rico.convert`` options and as CLI flags (standard library only);
- :mod:`support.trees`: the BigEarthNet-shaped tree maker and its ``metadata.parquet``;
- :mod:`support.geotiff`: the GeoTIFF writer (rasterio);
- :mod:`support.lmdb_records`: databases written and read record by record (py-lmdb);
- :mod:`support.expected_records`: what a record must hold (rasterio, Pillow, safetensors);
- :mod:`support.jpeg_writer`: baseline JPEGs of chosen Huffman codes;
- :mod:`support.cli`: the binary, or a Python script, run as a subprocess;
- :mod:`support.cluster`: a local Dask cluster on loopback.
"""
