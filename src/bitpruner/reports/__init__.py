"""Result tables and plots that compare model variants across accelerators."""
