"""Column names that look like direct patient identifiers. Such columns are never read into the
registry, the quarantine or any report: the run only names the column so the site can stop sending it."""

from __future__ import annotations

import re

_IDENTIFIER_NAME = re.compile(
    r"""^(
        (patient_|full_|first_|last_|given_|family_|middle_|sur)?name|forename|surname|initials
      | mrn|medical_record(_number|_no)?|hospital_number|nhs_number|insurance_number|ssn|social_security(_number)?
      | (home_|street_|postal_)?address|street|postcode|post_code|zip|zip_code|city
      | (tele|mobile_|cell_)?phone(_number)?|mobile|telephone|fax
      | e_?mail(_address)?
      | dob|date_of_birth|birth_?date
    )$""",
    re.VERBOSE,
)


# Words that mark a direct identifier wherever they appear in a name (`address_line_1`, `phone_no`,
# `patient_mrn`). "name" is not among them: `drug_name` is not about the patient.
_IDENTIFIER_WORDS = frozenset(
    {"address", "street", "postcode", "zip", "phone", "telephone", "mobile", "fax", "email", "mrn", "ssn", "nhs"}
)


def normalised(column: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", column.strip().lower()).strip("_")


def looks_like_identifier(column: str) -> bool:
    """True for names, record numbers, addresses, phone numbers, e-mail and full dates of birth."""
    name = normalised(column)
    return bool(_IDENTIFIER_NAME.match(name)) or bool(_IDENTIFIER_WORDS & set(name.split("_"))) or "e_mail" in name
