//! Contacts: adding, naming, accepting, blocking and verifying them, and
//! their sessions.

use super::*;

impl Profile {
    /// Adds a contact from a card string under `name`. A request or a
    /// blocked contact with that card becomes a contact.
    pub fn add_contact(&self, name: &str, card: &str) -> Result<ContactId, ProfileError> {
        let name = checked_name(name)?;
        let parsed = ContactCard::decode(card)?;
        let id = contact_id_of(&parsed.bundle.identity.signing);
        if id == self.own_contact_id() {
            return Err(ProfileError::OwnCard);
        }
        self.check_name_free(&name, &id)?;
        let record = match self.contact(&id)? {
            // A known contact with a new card (new address or prekeys):
            // keep the session state, take the card.
            Some(mut existing) => {
                existing.name = name;
                existing.card = parsed.encode();
                existing.state = ContactState::Contact;
                existing
            }
            None => ContactRecord::new(name, parsed.encode(), ContactState::Contact, unix_ms()),
        };
        self.put_contact(&id, &record)?;
        Ok(id)
    }

    fn check_name_free(&self, name: &str, id: &ContactId) -> Result<(), ProfileError> {
        match self.contact_by_name(name)? {
            Some((other, _)) if other != *id => Err(ProfileError::DuplicateName(name.to_owned())),
            _ => Ok(()),
        }
    }

    /// The contact named `name`, or an error saying there is none.
    pub fn named(&self, name: &str) -> Result<(ContactId, ContactRecord), ProfileError> {
        self.contact_by_name(name)?
            .ok_or_else(|| ProfileError::UnknownContact(name.to_owned()))
    }

    /// Renames a contact (or request).
    pub fn rename_contact(&self, name: &str, new_name: &str) -> Result<(), ProfileError> {
        let new_name = checked_name(new_name)?;
        let (id, mut record) = self.named(name)?;
        self.check_name_free(&new_name, &id)?;
        record.name = new_name;
        self.put_contact(&id, &record)
    }

    /// Accepts a contact request (optionally naming them): they become a
    /// contact, messages can be sent to them.
    pub fn accept_contact(&self, name: &str, new_name: Option<&str>) -> Result<(), ProfileError> {
        let (id, mut record) = self.named(name)?;
        if let Some(new_name) = new_name {
            let new_name = checked_name(new_name)?;
            self.check_name_free(&new_name, &id)?;
            record.name = new_name;
        }
        record.state = ContactState::Contact;
        self.put_contact(&id, &record)
    }

    /// Blocks a contact or request: what they send is dropped unread.
    pub fn block_contact(&self, name: &str) -> Result<(), ProfileError> {
        let (id, mut record) = self.named(name)?;
        record.state = ContactState::Blocked;
        self.put_contact(&id, &record)
    }

    /// Removes a contact with its sessions (their messages in the history
    /// stay until deleted). Writing again, they come back as a request.
    pub fn remove_contact(&self, name: &str) -> Result<ContactId, ProfileError> {
        let (id, _) = self.named(name)?;
        let mut batch = Batch::new();
        batch
            .delete(Namespace::Contacts, &id.0)
            .delete(Namespace::Sessions, &id.0);
        self.store.write_batch(batch)?;
        Ok(id)
    }

    /// The safety number with a contact: the same digits on their side
    /// when no one sits between.
    pub fn safety_number(&self, name: &str) -> Result<SafetyNumber, ProfileError> {
        let (_, record) = self.named(name)?;
        let card = ContactCard::decode(&record.card)?;
        Ok(SafetyNumber::between(
            &self.identity.public().signing,
            &card.bundle.identity.signing,
        ))
    }

    /// Marks a contact verified once the user has compared the safety
    /// number; `typed` (digits read out or scanned) must be it.
    pub fn verify_contact(&self, name: &str, typed: Option<&str>) -> Result<(), ProfileError> {
        let number = self.safety_number(name)?;
        if let Some(typed) = typed
            && !number.matches(typed)
        {
            return Err(ProfileError::SafetyNumberMismatch);
        }
        let (id, mut record) = self.named(name)?;
        record.verified = true;
        self.put_contact(&id, &record)
    }

    /// Messages dropped from contact requests beyond the limits.
    pub fn requests_dropped(&self) -> Result<u64, ProfileError> {
        Ok(self
            .store
            .get(Namespace::Meta, REQUESTS_DROPPED)?
            .and_then(|b| <[u8; 8]>::try_from(&b[..]).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(0))
    }

    /// Counts a message dropped from a contact request.
    pub fn count_request_dropped(&self) -> Result<(), ProfileError> {
        let n = self.requests_dropped()? + 1;
        self.store
            .put(Namespace::Meta, REQUESTS_DROPPED, &n.to_be_bytes())?;
        Ok(())
    }

    /// A contact's record.
    pub fn contact(&self, id: &ContactId) -> Result<Option<ContactRecord>, ProfileError> {
        match self.store.get(Namespace::Contacts, &id.0)? {
            None => Ok(None),
            Some(bytes) => ContactRecord::decode(&bytes)
                .map(Some)
                .ok_or(ProfileError::Corrupt("contact")),
        }
    }

    /// Writes a contact's record.
    pub fn put_contact(&self, id: &ContactId, record: &ContactRecord) -> Result<(), ProfileError> {
        let bytes = postcard::to_stdvec(record).map_err(|_| ProfileError::Corrupt("contact"))?;
        self.store.put(Namespace::Contacts, &id.0, &bytes)?;
        Ok(())
    }

    /// Every contact, sorted by name.
    pub fn contacts(&self) -> Result<Vec<(ContactId, ContactRecord)>, ProfileError> {
        let mut out = Vec::new();
        for (key, value) in self.store.list(Namespace::Contacts)? {
            let (Ok(id), Some(record)) = (
                <[u8; 16]>::try_from(&key[..]),
                ContactRecord::decode(&value),
            ) else {
                return Err(ProfileError::Corrupt("contact"));
            };
            out.push((ContactId(id), record));
        }
        out.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        Ok(out)
    }

    /// The contact named `name`.
    pub fn contact_by_name(
        &self,
        name: &str,
    ) -> Result<Option<(ContactId, ContactRecord)>, ProfileError> {
        Ok(self.contacts()?.into_iter().find(|(_, r)| r.name == name))
    }

    /// A contact's ratchet sessions, the active one (used to send) first.
    /// Several exist when both sides started a handshake at once; each
    /// side keeps the other's too, so every message still decrypts.
    pub fn sessions(&self, id: &ContactId) -> Result<Vec<Session>, ProfileError> {
        let Some(bytes) = self.store.get(Namespace::Sessions, &id.0)? else {
            return Ok(Vec::new());
        };
        let encoded: Vec<Vec<u8>> =
            postcard::from_bytes(&bytes).map_err(|_| ProfileError::Corrupt("session"))?;
        encoded
            .iter()
            .map(|b| Session::from_bytes(b).map_err(|_| ProfileError::Corrupt("session")))
            .collect()
    }

    /// Writes a contact's record and sessions together (at most
    /// [`MAX_SESSIONS`] are kept, the first being the active one).
    pub fn put_sessions(
        &self,
        id: &ContactId,
        record: &ContactRecord,
        sessions: &[Session],
    ) -> Result<(), ProfileError> {
        let record_bytes =
            postcard::to_stdvec(record).map_err(|_| ProfileError::Corrupt("contact"))?;
        let encoded: Vec<Zeroizing<Vec<u8>>> = sessions
            .iter()
            .take(MAX_SESSIONS)
            .map(|s| s.to_bytes())
            .collect();
        let plain: Vec<&[u8]> = encoded.iter().map(|b| b.as_slice()).collect();
        let sessions_bytes = Zeroizing::new(
            postcard::to_stdvec(&plain).map_err(|_| ProfileError::Corrupt("session"))?,
        );
        let mut batch = Batch::new();
        batch.put(Namespace::Contacts, &id.0, &record_bytes).put(
            Namespace::Sessions,
            &id.0,
            &sessions_bytes,
        );
        self.store.write_batch(batch)?;
        Ok(())
    }
}
