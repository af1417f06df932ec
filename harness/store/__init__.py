"""What a run folder holds and how it is read and written safely: the records store, human labels, the folder's lock."""
