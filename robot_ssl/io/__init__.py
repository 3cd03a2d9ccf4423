"""Files: session and labels HDF5 files, atomic outputs, model-file integrity checks (the only h5py users)."""
