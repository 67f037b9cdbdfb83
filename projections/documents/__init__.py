"""Documents made from the record.

The letters of 附件4–7 (letters.py, case_letters.py) and the catalogue's spreadsheets (catalogue_io.py).
"""
