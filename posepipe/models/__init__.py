"""Model files and how they run: the BlazePose assets (``assets``), the ``.tflite`` graph
importer (``graph``) and the inference runtimes (``runtime``)."""
