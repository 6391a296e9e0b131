"""The data path: audio I/O, user input files, the corpus (planned songs, folk tunes,
chorales), dataset checks (licence and consent), analysis labelling."""
