"""Documents made from the record: what a clerk prints or files.

The letters of 附件4–7, the decline and the consequence notices as text (letters.py, built from
a case by case_letters.py), laid out as paper (paper.py) and written as DOCX (word.py) or PDF
(pdf.py) under Chinese file names (files.py); the catalogue's spreadsheets (catalogue_io.py).
"""
