//! Test fixtures, behind the `test-util` feature: [`LegBuilder`] fills in every field of a
//! [`Leg`] a test does not care about, so a test names only the fields it varies.

use std::net::{IpAddr, Ipv4Addr};

use sip::Transport;

use crate::{EndReason, Leg, LegMessage, Micros, Side};

/// Builds a [`Leg`] from plain defaults: call `leg@example.com` on sensor 1 from `1001` to
/// `2002` (both at `example.com`), starting and ending at 0, unanswered, no final response,
/// ended by a confirmed BYE, UDP from 127.0.0.1:5060 to 127.0.0.1:5060, every optional field
/// empty, no SIP messages. Each setter is named after the field it sets.
#[derive(Debug, Clone)]
pub struct LegBuilder {
    leg: Leg,
}

impl Leg {
    /// A [`LegBuilder`] with its defaults.
    pub fn builder() -> LegBuilder {
        LegBuilder::default()
    }
}

impl Default for LegBuilder {
    fn default() -> Self {
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);
        LegBuilder {
            leg: Leg {
                call_id: "leg@example.com".into(),
                sensor_id: 1,
                caller: "1001".into(),
                caller_domain: "example.com".into(),
                caller_name: None,
                called: "2002".into(),
                called_domain: "example.com".into(),
                called_name: None,
                from_tag: None,
                to_tag: None,
                start: 0,
                answer: None,
                end: 0,
                last_response: None,
                last_response_text: None,
                end_reason: EndReason::ByeConfirmed,
                hangup_by: None,
                transport: Transport::Udp,
                src_ip: localhost,
                src_port: 5060,
                dst_ip: localhost,
                dst_port: 5060,
                partial: false,
                referred_by: None,
                refer_to: None,
                replaces: None,
                user_agent: None,
                sip_message_count: 0,
                messages: Vec::new(),
            },
        }
    }
}

/// One setter per field: `text` fields take anything that becomes a `String`, `optional_text`
/// fields an `Option` of it, `value` fields their own type.
macro_rules! setters {
    (
        text: $($text:ident),*;
        optional_text: $($opt:ident),*;
        value: $($value:ident: $ty:ty),* $(,)?
    ) => {
        impl LegBuilder {
            $(
                pub fn $text(mut self, v: impl Into<String>) -> Self {
                    self.leg.$text = v.into();
                    self
                }
            )*
            $(
                pub fn $opt(mut self, v: Option<impl Into<String>>) -> Self {
                    self.leg.$opt = v.map(Into::into);
                    self
                }
            )*
            $(
                pub fn $value(mut self, v: $ty) -> Self {
                    self.leg.$value = v;
                    self
                }
            )*
        }
    };
}

setters! {
    text: call_id, caller, caller_domain, called, called_domain;
    optional_text: caller_name, called_name, from_tag, to_tag, last_response_text, referred_by,
        refer_to, replaces, user_agent;
    value: sensor_id: u32, start: Micros, answer: Option<Micros>, end: Micros,
        last_response: Option<u16>, end_reason: EndReason, hangup_by: Option<Side>,
        transport: Transport, src_ip: IpAddr, src_port: u16, dst_ip: IpAddr, dst_port: u16,
        partial: bool, sip_message_count: u32, messages: Vec<LegMessage>,
}

impl LegBuilder {
    /// Both domains at once.
    pub fn domains(
        self,
        caller_domain: impl Into<String>,
        called_domain: impl Into<String>,
    ) -> Self {
        self.caller_domain(caller_domain)
            .called_domain(called_domain)
    }

    /// The final response: its code and reason phrase.
    pub fn response(self, code: u16, text: impl Into<String>) -> Self {
        self.last_response(Some(code))
            .last_response_text(Some(text))
    }

    pub fn build(self) -> Leg {
        self.leg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_set_their_field_and_leave_the_rest_at_the_defaults() {
        let leg = Leg::builder()
            .call_id("c1")
            .caller_name(Some("Alice"))
            .answer(Some(5))
            .response(200, "OK")
            .build();
        assert_eq!(leg.call_id, "c1");
        assert_eq!(leg.caller_name.as_deref(), Some("Alice"));
        assert_eq!(leg.answer, Some(5));
        assert_eq!(
            (leg.last_response, leg.last_response_text.as_deref()),
            (Some(200), Some("OK"))
        );
        assert_eq!(
            Leg {
                call_id: "leg@example.com".into(),
                caller_name: None,
                answer: None,
                last_response: None,
                last_response_text: None,
                ..leg
            },
            Leg::builder().build()
        );
    }
}
