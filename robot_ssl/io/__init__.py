"""Files: session and labels HDF5 files and the stream table (the only h5py users)."""
